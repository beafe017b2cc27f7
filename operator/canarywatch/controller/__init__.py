"""canarywatch.controller"""
