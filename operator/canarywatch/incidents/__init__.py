"""canarywatch.incidents"""
