"""canarywatch.relay"""
