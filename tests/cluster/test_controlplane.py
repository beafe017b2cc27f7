"""Smoke tests of the real control plane the cluster tier runs against."""

from __future__ import annotations

from typing import Any

import controlplane
import pytest
from availability import unavailable
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from polling import eventually

pytestmark = pytest.mark.cluster


def test_server_is_the_pinned_release(control_plane: controlplane.ControlPlane) -> None:
    info = client.VersionApi(control_plane.api_client).get_code()
    assert info.git_version == controlplane.tool_version("kube-apiserver")
    assert info.git_version.startswith("v1.")


def test_configmap_round_trip(control_plane: controlplane.ControlPlane, namespace: str) -> None:
    core = client.CoreV1Api(control_plane.api_client)
    ns = core.read_namespace(namespace)
    assert ns.status.phase == "Active"

    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "canarywatch"}),
        data={"interval": "30s", "tenants": "a,b"},
    )
    created = core.create_namespaced_config_map(namespace, body)
    assert created.metadata.uid
    assert created.metadata.resource_version

    got = core.read_namespaced_config_map("settings", namespace)
    assert got.data == {"interval": "30s", "tenants": "a,b"}
    listed = core.list_namespaced_config_map(namespace, label_selector="app=canarywatch")
    assert [cm.metadata.name for cm in listed.items] == ["settings"]

    # Optimistic concurrency is real: a stale resourceVersion is a conflict.
    got.data["interval"] = "10s"
    core.replace_namespaced_config_map("settings", namespace, got)
    got.data["interval"] = "5s"
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("settings", namespace, got)
    assert conflict.value.status == 409


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (
            "configmap with an invalid name",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_DNS_Name")),
        ),
        (
            "configmap with an invalid data key",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ok"), data={"bad key!": "x"}),
        ),
    ],
)
def test_server_side_validation_rejects_invalid_objects(
    control_plane: controlplane.ControlPlane, namespace: str, kind: str, body: Any
) -> None:
    core = client.CoreV1Api(control_plane.api_client)
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_config_map(namespace, body)
    assert rejected.value.status == 422, kind
    assert '"reason":"Invalid"' in rejected.value.body.replace(" ", "")


def test_server_side_validation_of_a_deployment_dry_run(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    apps = client.AppsV1Api(control_plane.api_client)
    deployment = _deployment("dry", replicas=-1)
    with pytest.raises(ApiException) as rejected:
        apps.create_namespaced_deployment(namespace, deployment, dry_run="All")
    assert rejected.value.status == 422
    assert "spec.replicas" in rejected.value.body

    deployment.spec.replicas = 1
    accepted = apps.create_namespaced_deployment(namespace, deployment, dry_run="All")
    assert accepted.metadata.name == "dry"
    assert apps.list_namespaced_deployment(namespace).items == []  # dry run stored nothing


def test_rbac_denies_an_unprivileged_service_account(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.api_client)
    rbac = client.RbacAuthorizationV1Api(control_plane.api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token_request = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    token = token_request.status.token
    assert token

    sa_client = control_plane.token_api_client(token)
    try:
        # Authenticated (not 401) as the ServiceAccount ...
        review = client.AuthenticationV1Api(sa_client).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:nobody"

        # ... and denied by RBAC.
        sa_core = client.CoreV1Api(sa_client)
        for call in (
            lambda: sa_core.list_namespaced_config_map(namespace),
            lambda: sa_core.list_namespaced_secret(namespace),
            sa_core.list_namespace,
        ):
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403
        access = client.AuthorizationV1Api(sa_client).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=namespace, verb="list", resource="configmaps"
                    )
                )
            )
        )
        assert access.status.allowed is False

        # A Role + RoleBinding grants exactly what it says (RBAC is enforced, not
        # "everything is denied"); the authorizer's cache catches up within seconds.
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-configmaps"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="read-configmaps"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)],
            ),
        )

        def can_list() -> bool:
            try:
                sa_core.list_namespaced_config_map(namespace)
            except ApiException as err:
                assert err.status == 403
                return False
            return True

        eventually(can_list, timeout=30, what="the RoleBinding to take effect")
        with pytest.raises(ApiException) as still_denied:
            sa_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403
    finally:
        sa_client.close()


def test_controller_manager_reconciles_deployments(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    if not control_plane.controller_manager:
        unavailable("control plane started without kube-controller-manager")
    core = client.CoreV1Api(control_plane.api_client)
    apps = client.AppsV1Api(control_plane.api_client)

    # The serviceaccount controller gives every namespace its `default` account.
    eventually(
        lambda: [sa for sa in core.list_namespaced_service_account(namespace).items
                 if sa.metadata.name == "default"],
        what="the default ServiceAccount",
    )  # fmt: skip

    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=2))
    replica_sets = eventually(
        lambda: apps.list_namespaced_replica_set(namespace, label_selector="app=web").items,
        what="the Deployment's ReplicaSet",
    )
    owner = replica_sets[0].metadata.owner_references[0]
    assert (owner.kind, owner.name) == ("Deployment", "web")
    pods = eventually(
        lambda: (
            items
            if len(items := core.list_namespaced_pod(namespace, label_selector="app=web").items) == 2
            else None
        ),
        what="the ReplicaSet's two Pods",
    )
    assert all(p.status.phase == "Pending" for p in pods)  # no scheduler, no kubelet

    # Garbage collection: deleting the Deployment takes its ReplicaSet and Pods along.
    apps.delete_namespaced_deployment(
        "web", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    eventually(
        lambda: not apps.list_namespaced_replica_set(namespace, label_selector="app=web").items,
        what="the ReplicaSet to be garbage-collected",
    )


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="canarywatch/placeholder:1")]
                ),
            ),
        ),
    )
