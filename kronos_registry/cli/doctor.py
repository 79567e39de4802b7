"""`kronos-registry doctor`: versions, endpoints, the store and every entry's health."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from kronos_registry import __version__
from kronos_registry.cli.app import App, cli, pass_app
from kronos_registry.cli.output import emit_json, redact_secrets, table
from kronos_registry.services.catalog import human_size
from registry import provenance
from registry.errors import RegistryError


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def probe_endpoint(url: str, timeout: float = 3.0) -> dict:
    """Whether ``url`` answers HTTP within ``timeout`` (any status counts as an answer)."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import unquote, urlsplit

    from registry.sources import plain_url

    # urllib cannot open http://user:password@host/ itself: probe the plain URL, with the
    # credentials as the Basic authorization the hub client would send them.
    parts = urlsplit(url)
    request = urllib.request.Request(plain_url(url) or url, method="HEAD")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"url": url, "reachable": False, "detail": redact_secrets(f"no answer: {reason}")}
    elapsed = (time.perf_counter() - started) * 1000
    return {"url": url, "reachable": True, "detail": f"HTTP {status} in {elapsed:.0f} ms"}


def store_state(store: dict) -> str:
    if store["exists"]:
        return ""
    return " (NOT A FOLDER)" if store["not_a_folder"] else " (not created yet)"


def store_health(root: Path) -> dict:
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    writable = existing.is_dir() and os.access(existing, os.W_OK)
    if root.is_dir():
        try:  # os.access lies on some network filesystems: try for real
            with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
                writable = True
        except OSError:
            writable = False
    from kronos_registry.services.stored import disk_usage

    return {"path": str(root), "exists": root.is_dir(), "not_a_folder": root.exists() and not root.is_dir(),
            "writable": writable, "free_bytes": shutil.disk_usage(existing).free,
            "usage": disk_usage(root)}


def entry_health(registry, entry) -> dict:
    """Synced and passing the cheap check (manifest and sizes)? Never touches the network."""
    info = {"name": entry.name, "kind": entry.kind, "available": entry.available, "synced": False,
            "check": None, "artifact_id": None, "unverified": []}
    if not entry.available or entry.source is None:
        info["check"] = "unavailable"
        return info
    artifact = registry.status(entry.name)
    if artifact:
        unchecked = provenance.unverified(registry.store.read_manifest(artifact))
        info.update(synced=True, artifact_id=artifact, unverified=list(unchecked),
                    check=f"ok, but unverified: {', '.join(unchecked)}" if unchecked else "ok")
        return info
    stored = registry.loader.stored_artifact(entry)   # the engine's one entry -> artifact rule
    if stored is None:
        info["check"] = "not synced"
        return info
    problems = registry.store.check(stored)
    info.update(synced=True, artifact_id=stored,
                check=f"damaged: {problems[0]}" if problems else "stale: its source folder changed since sync")
    return info


def doctor_report(app: App) -> tuple[dict, RegistryError | None]:
    report: dict[str, Any] = {
        "version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": package_version("torch"),
        "huggingface_hub": package_version("huggingface_hub"),
        "matplotlib": package_version("matplotlib"),
        "hf_token": "set" if (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")) else "not set",
    }
    try:
        registry = app.registry()
    except RegistryError as error:
        # Report what can be known without a registry, then fail with the file's problems.
        from registry.sources import is_offline
        from registry.store import default_store_root

        report.update(registry={"files": [], "valid": False, "problems": error.message},
                      store=store_health(default_store_root(app.store).expanduser().absolute()),
                      offline=is_offline(app.offline), endpoints=[], entries=[])
        return report, error
    report["registry"] = {"files": list(registry.spec.paths), "valid": True,
                          "warnings": [str(w) for w in registry.spec.warnings]}
    report["store"] = store_health(registry.store.root)
    report["offline"] = registry.offline
    from registry.sources import plain_url

    urls = list(registry.endpoints.urls)
    report["endpoints"] = [{"url": url, "reachable": None, "detail": "not checked (offline)"} for url in urls]
    if not registry.offline and urls:
        report["endpoints"][0] = probe_endpoint(urls[0])
    for probe in report["endpoints"]:  # a token may ride in the URL (user:token@host): never show it
        probe["url"] = plain_url(probe["url"])
    report["entries"] = [entry_health(registry, entry) for entry in registry.entries()]
    return report, None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_app
def doctor(app: App, as_json: bool):
    """Check the set-up: versions, registry file, store, endpoint, offline mode, entries.

    Asks the first endpoint for an answer (3 s at most) unless offline. Never
    prints HF_TOKEN, only whether it is set.
    """
    report, error = doctor_report(app)
    if as_json:
        emit_json(report)
    else:
        click.echo(render_doctor(report))
    if error is not None:
        raise error


def usage_text(usage: dict | None) -> str:
    if not usage:
        return "-"
    parts = ", ".join(f"{name} {human_size(size)}" for name, size in usage["parts"].items() if size)
    count = usage["objects"]
    return (f"{human_size(usage['total_bytes'])} ({count} object{'s' if count != 1 else ''}"
            + (f"; {parts}" if parts else "") + ")")


def render_doctor(report: dict) -> str:
    store = report["store"]
    lines = [
        f"kronos-registry  {report['version']}",
        f"python           {report['python']} ({report['platform']})",
        f"torch            {report['torch'] or 'not installed'}",
        f"huggingface_hub  {report['huggingface_hub'] or 'not installed'}",
        f"matplotlib       {report['matplotlib'] or 'not installed (needed for --plot)'}",
        "",
        f"registry         {'valid' if report['registry']['valid'] else 'INVALID'}",
    ]
    lines += [f"  file           {path}" for path in report["registry"]["files"]]
    lines += [f"  {w}" for w in report["registry"].get("warnings", [])]
    lines += [
        f"store            {store['path']}{store_state(store)}",
        f"  writable       {'yes' if store['writable'] else 'NO'}",
        f"  disk usage     {usage_text(store.get('usage'))}",
        f"  free space     {human_size(store['free_bytes'])}",
        f"offline          {'yes' if report['offline'] else 'no'}",
        f"HF_TOKEN         {report['hf_token']}",
    ]
    for probe in report["endpoints"]:
        lines.append(f"endpoint         {probe['url']}  {probe['detail']}")
    if report["entries"]:
        lines += ["", table(["ENTRY", "KIND", "STORE"],
                            [[e["name"], e["kind"], e["check"]] for e in report["entries"]])]
    return "\n".join(lines)


