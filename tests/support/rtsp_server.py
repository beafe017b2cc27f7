"""A GStreamer RTSP server (Debian's gir1.2-gst-rtsp-server-1.0), configured by JSON.

Run by Debian's own Python (``/usr/bin/python3``, where ``python3-gi`` lives), not the
project's venv:  ``/usr/bin/python3 rtsp_server.py CONFIG.json``. The config:

    {"port": 8554, "auth": "basic" | "digest",
     "users": {"acme": "t-acme", ...},
     "mounts": {"/acme/0": {"rtp_port": 5004, "readers": ["acme"]}, ...}}

Each mount re-serves the H.264 RTP a publisher sends to ``rtp_port`` on 127.0.0.1 (one
shared media per mount, as a camera relay does), or plays its own ``launch`` (a
gst-launch description whose payloader is ``pay0``); only the users listed in
``readers`` may read it. It binds 127.0.0.1 and runs until SIGTERM.

Optional: ``"tls": {"cert": PEM, "key": PEM}`` serves RTSP over TLS only (``rtsps``);
``"requests_log": PATH`` appends one JSON line per request the server reads
(``{"method": "DESCRIBE", "authorization": true}``): what a client sent it, seen from
the server.
"""

import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
METHODS = ("options", "describe", "setup", "play", "pause", "teardown", "get-parameter", "set-parameter")


def log_requests(server: GstRtspServer.RTSPServer, path: str) -> None:
    """Every request of every client, as the server read it, appended to ``path``."""

    def on_request(_client: GstRtspServer.RTSPClient, context: GstRtspServer.RTSPContext, method: str) -> int:
        found, _value = context.request.get_header(GstRtsp.RTSPHeaderField.AUTHORIZATION, 0)
        with open(path, "a") as log:
            log.write(json.dumps({"method": method, "authorization": found == GstRtsp.RTSPResult.OK}) + "\n")
        return GstRtsp.RTSPStatusCode.OK

    def on_client(_server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient) -> None:
        for method in METHODS:
            client.connect(f"pre-{method}-request", on_request, method.upper())

    server.connect("client-connected", on_client)


def main(path: str) -> None:
    with open(path) as handle:
        config = json.load(handle)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(config["port"]))
    auth = GstRtspServer.RTSPAuth()
    digest = config.get("auth", "basic") == "digest"
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST if digest else GstRtsp.RTSPAuthMethod.BASIC)
    for user, password in config["users"].items():
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, user)
        if digest:
            auth.add_digest(user, password, token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    if "tls" in config:
        auth.set_tls_certificate(
            Gio.TlsCertificate.new_from_files(config["tls"]["cert"], config["tls"]["key"])
        )
    server.set_auth(auth)
    if "requests_log" in config:
        log_requests(server, config["requests_log"])
    mounts = server.get_mount_points()
    for mount, spec in config["mounts"].items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            spec.get("launch")
            or f'( udpsrc address=127.0.0.1 port={spec["rtp_port"]} caps="{CAPS}" '
            "! rtph264depay ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(True)
        permissions = GstRtspServer.RTSPPermissions()
        for reader in spec["readers"]:
            for permission in (
                GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
            ):
                permissions.add_permission_for_role(reader, permission, True)
        factory.set_permissions(permissions)
        mounts.add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{config['port']}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"rtsp server on 127.0.0.1:{config['port']}", flush=True)
    loop.run()


if __name__ == "__main__":
    main(sys.argv[1])
