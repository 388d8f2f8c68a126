"""Run a WSGI or ASGI app under fastpysgi through its run() API (it tells them apart), one worker.

Usage: python launch_fastpysgi.py MODULE:CALLABLE HOST PORT
"""
import sys

from launch_bjoern import load

if __name__ == "__main__":
    import fastpysgi

    target, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fastpysgi.run(load(target), host=host, port=port, loglevel=0, workers=1)
