#!/usr/bin/env python3
"""Layering check: every dependency edge must be allowed by DESIGN.md §2's table.

Reads `cargo metadata` (declared dependencies, no resolution) for the workspace and for the
separate fuzz workspace, and fails on:
  - an edge between Joyride crates that the table does not allow;
  - an external (crates.io) normal/build dependency of a pure crate (base, ip, tcp) outside
    PURE_EXTERNAL, or of posix outside POSIX_EXTERNAL;
  - a Joyride crate missing from the table (the table must grow with the workspace).
Dev-dependencies of any crate may use test tools (proptest, criterion) but never posix.
"""
import json
import subprocess
import sys

# crate -> Joyride crates it may depend on (normal and build dependencies)
ALLOWED = {
    "base": set(),
    "ip": {"base"},
    "tcp": {"base", "ip"},
    "ipc": {"base"},
    "vfio": set(),
    "drivers": {"base", "vfio"},
    "virtio": {"base", "vfio", "drivers"},
    "ixgbe": {"base", "vfio", "drivers"},
    "mlx5": {"base", "vfio", "drivers"},
    "service": {"base", "ip", "tcp", "ipc", "vfio", "drivers", "virtio", "ixgbe", "mlx5"},
    "posix": {"ipc", "base"},
}
ANYTHING_BUT_POSIX = {"sim", "fuzz", "benches", "tinyvm"}
PURE = {"base", "ip", "tcp"}
PURE_EXTERNAL = {"bitflags", "static_assertions", "zerocopy"}
POSIX_EXTERNAL = {"libc"}


def short(name):
    return name[len("joyride-"):] if name.startswith("joyride-") else None


def metadata(manifest):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline",
         "--manifest-path", manifest],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["packages"]


def main():
    errors = []
    packages = metadata("Cargo.toml")
    try:
        packages += metadata("fuzz/Cargo.toml")
    except (subprocess.CalledProcessError, FileNotFoundError):
        pass
    checked = 0
    for pkg in packages:
        me = short(pkg["name"])
        if me is None:
            errors.append(f"{pkg['name']}: workspace crates are named joyride-<dir>")
            continue
        if me not in ALLOWED and me not in ANYTHING_BUT_POSIX:
            errors.append(f"{pkg['name']}: not in the layering table (.ci/layering.py, DESIGN.md §2)")
            continue
        for dep in pkg["dependencies"]:
            checked += 1
            other = short(dep["name"])
            dev = dep["kind"] == "dev"
            edge = f"{pkg['name']} -> {dep['name']}" + (" (dev)" if dev else "")
            if other is not None:
                if other == "posix" and me != "posix":
                    errors.append(f"{edge}: nothing may depend on posix")
                elif me in ANYTHING_BUT_POSIX or dev:
                    continue
                elif other not in ALLOWED[me]:
                    errors.append(f"{edge}: {me} may use only {sorted(ALLOWED[me]) or 'no Joyride crate'}")
            elif not dev:
                if me in PURE and dep["name"] not in PURE_EXTERNAL:
                    errors.append(f"{edge}: pure crates take only {sorted(PURE_EXTERNAL)}")
                if me == "posix" and dep["name"] not in POSIX_EXTERNAL:
                    errors.append(f"{edge}: posix takes only {sorted(POSIX_EXTERNAL)}")
    for e in errors:
        print(f"layering: {e}", file=sys.stderr)
    print(f"layering: {len(packages)} crates, {checked} dependency edges, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
