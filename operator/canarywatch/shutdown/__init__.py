"""canarywatch.shutdown"""
