"""The cluster tier: the operator against a real etcd + kube-apiserver +
kube-controller-manager. The ``control_plane`` and ``namespace`` fixtures live in
``tests/support/cluster_fixtures.py`` (shared with the e2e tier through ``tests/conftest.py``).
"""
