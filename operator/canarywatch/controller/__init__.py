"""canarywatch.controller: the Kubernetes side of canarywatch.

``builders`` turns a CanaryProbe (and its CameraIntegration) into plain-dict manifests:
keyring Secrets, camera and viewer Deployments, the agents' RBAC, and the probe's
status. It is pure (no kopf, no Kubernetes client, no I/O); the kopf handlers stay thin
around it: read the spec, build, adopt, create or patch, set the status.
"""
