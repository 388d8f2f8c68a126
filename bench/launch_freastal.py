"""Run an app under freastal (serve() for WSGI, serve_asgi() for ASGI), one worker.

Usage: python launch_freastal.py wsgi|asgi MODULE:CALLABLE HOST PORT
"""
import sys

from launch_bjoern import load

if __name__ == "__main__":
    import freastal

    iface, target, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    serve = freastal.serve_asgi if iface == "asgi" else freastal.serve
    serve(load(target), host=host, port=port, workers=1)
