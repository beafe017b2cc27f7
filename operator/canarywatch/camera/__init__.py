"""canarywatch.camera"""
