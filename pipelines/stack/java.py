"""Finding Java and Maven, and fetching the stack's Java artifacts once into the cache."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pipelines.stack.errors import StackError
from pipelines.stack.layout import STACK_DIR, StackLayout

__all__ = [
    "MIN_JAVA",
    "REGISTRY_MIN_JAVA",
    "artifacts_ready",
    "ensure_artifacts",
    "find_java",
    "find_registry_java",
    "pom_digest",
]

log = logging.getLogger(__name__)

MIN_JAVA = 17
REGISTRY_MIN_JAVA = 21
POMS = ("pom.xml", "converter.xml")
STAMP = ".seatflow-stamp"


def _major(java: Path) -> int:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0_..." style


def _candidates(env_var: str) -> list[Path]:
    found = []
    for home in (os.environ.get(env_var), os.environ.get("JAVA_HOME")):
        if home:
            found.append(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    # Other JDKs installed side by side (Debian's and Temurin's packages put them here).
    found.extend(sorted(Path("/usr/lib/jvm").glob("*/bin/java")))
    return [p for p in found if p.exists()]


def find_java(min_major: int = MIN_JAVA, *, env_var: str = "SEATFLOW_JAVA_HOME",
              install_hint: str = "apt-get install openjdk-17-jre-headless") -> Path:
    """A java binary of at least `min_major`: $env_var, $JAVA_HOME, PATH, then /usr/lib/jvm."""
    for candidate in _candidates(env_var):
        if _major(candidate) >= min_major:
            return candidate
    raise StackError(f"Java {min_major}+ is needed and none was found: {install_hint}, "
                     f"or set {env_var}")


def find_registry_java() -> Path:
    """Apicurio Registry 3.3 is compiled for Java 21 (class file 65)."""
    return find_java(REGISTRY_MIN_JAVA, env_var="SEATFLOW_REGISTRY_JAVA_HOME",
                     install_hint="Debian 12 ships only 17, so install a Temurin 21+ JDK "
                                  "under /usr/lib/jvm")


def find_maven() -> Path:
    found = shutil.which("mvn")
    if not found:
        raise StackError(
            "Maven is needed to fetch the stack's Java artifacts once: apt-get install maven"
        )
    return Path(found)


def pom_digest() -> str:
    """Hash of the POMs and the sources they build (stack/converter): the unpacked artifacts
    are valid while it is unchanged."""
    h = hashlib.sha256()
    sources = sorted(p for p in (STACK_DIR / "converter").rglob("*") if p.is_file())
    for path in [*(STACK_DIR / name for name in POMS), *sources]:
        h.update(str(path.relative_to(STACK_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def artifacts_ready(layout: StackLayout) -> bool:
    stamp = layout.artifacts / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == pom_digest()
        and (layout.registry_dir / "quarkus-run.jar").is_file()
        and any(layout.kafka_libs.glob("kafka_2.13-*.jar"))
        and (layout.connect_plugins / "debezium-connector-postgres").is_dir()
        and (layout.connect_plugins / "apicurio-converter").is_dir()
    )


def ensure_artifacts(layout: StackLayout, *, on_line: Callable[[str], None] | None = None,
                     maven_log: Path) -> bool:
    """Run Maven unless the artifacts for these POMs are unpacked already; True if it ran."""
    if artifacts_ready(layout):
        return False
    mvn = find_maven()
    # Stale jars from an older POM must not linger on a class path.
    shutil.rmtree(layout.artifacts, ignore_errors=True)
    layout.artifacts.mkdir(parents=True)
    layout.m2.mkdir(parents=True, exist_ok=True)
    maven_log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(mvn), "-B", "-f", str(STACK_DIR / "pom.xml"),
        f"-Dmaven.repo.local={layout.m2}", f"-Dseatflow.artifacts={layout.artifacts}",
        "package",
    ]
    log.info("fetching Java artifacts: %s", " ".join(cmd))
    with maven_log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if on_line is not None:
                on_line(line.rstrip())
        code = proc.wait()
    if code != 0:
        tail = "".join(maven_log.read_text().splitlines(keepends=True)[-30:])
        raise StackError(f"Maven failed (exit {code}); full log: {maven_log}",
                         service="maven", log_tail=tail)
    (layout.artifacts / STAMP).write_text(pom_digest() + "\n")
    return True
