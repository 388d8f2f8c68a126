"""Run a WSGI app under bjoern (which has no CLI).

Usage: python launch_bjoern.py MODULE:CALLABLE HOST PORT
"""
import importlib
import sys


def load(target):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


if __name__ == "__main__":
    import bjoern

    target, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bjoern.run(load(target), host, port)
