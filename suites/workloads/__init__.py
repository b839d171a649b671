"""Workload manifests (jinja2 templates rendered to dicts), images and the reference app."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import jinja2
import yaml

HERE = Path(__file__).resolve().parent
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), undefined=jinja2.StrictUndefined, autoescape=False,
                          keep_trailing_newline=True)


def render(template: str, **values: Any) -> dict:
    """Render suites/workloads/<template>.yaml.j2 to an API object."""
    return yaml.safe_load(_env.get_template(f"{template}.yaml.j2").render(**values))


def default_images() -> dict[str, str]:
    return {str(k): str(v) for k, v in yaml.safe_load((HERE / "images.yaml").read_text()).items()}


def resolve_images(overrides: list[str] | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Defaults < OKDBENCH_IMAGE_<NAME> < --image NAME=REF. Unknown names are an error (typos)."""
    images = default_images()
    environ = os.environ if environ is None else environ
    for name in images:
        env = "OKDBENCH_IMAGE_" + name.upper().replace("-", "_")
        if environ.get(env):
            images[name] = environ[env]
    for item in overrides or []:
        name, sep, ref = item.partition("=")
        if not sep or not ref:
            raise ValueError(f"--image: {item!r} is not NAME=REF; e.g. --image fio=mirror.example.com/etcd-perf:latest")
        if name not in images:
            raise ValueError(f"--image: unknown image name {name!r}; use one of {', '.join(sorted(images))}")
        images[name] = ref
    return images


def app_archive(app: str) -> bytes:
    """The reference app's directory as a tar archive, the body of a binary build."""
    src = HERE / "apps" / app
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(src)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # same bytes every run
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()
