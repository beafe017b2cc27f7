"""The processes a CanaryProbe's pods run: ``canarywatch camera`` and ``canarywatch viewer``.

Each agent reads the environment its Deployment gives it (``agents.env``, the contract
written down in ``controller.manifests``), runs one tenant's share of the standalone
pipeline's parts (canary cameras; hub viewers judging every frame) and serves
``/metrics`` and ``/healthz``. A viewer that confirms a leak reports it by creating a
``LeakIncident`` (``agents.reporting`` builds it); the operator does the rest.

Entry points: ``agents.camera.run_camera_agent(environ)`` and
``agents.viewer.run_viewer_agent(environ)`` return the process exit code (0 stopped
cleanly, 2 bad configuration, 1 runtime failure); ``python -m canarywatch.agents.camera``
(or ``.viewer``) runs one with the process's environment. This package imports neither,
so that ``-m`` runs each module once.
"""
