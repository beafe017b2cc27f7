"""canarywatch.viewer"""
