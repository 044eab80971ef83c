"""The local TF Serving-compatible model server (REST and gRPC) over the versions the Pusher wrote (``serve``).

- ``settings``: ``ServerSettings``, every default and allowed range of the server (the command's options).
- ``formats``: TF Serving's REST ``:predict`` request and response formats on a SavedModel signature.
- ``versions``: which complete versions the serving directory holds (no TensorFlow).
- ``repository``: the versions on disk, loaded and hot-swapped while serving, and the canary.
- ``batching``: concurrent requests sharing one TensorFlow call.
- ``grpc_api``: what TF Serving's gRPC services (``PredictionService``, ``ModelService``) answer, over the same
  repository and batcher, and those services on grpc.aio in this process.
- ``grpc_bridge``: gRPC's transport: ``taxi-grpc-front`` (``grpc_front/main.go``, Go) forwarding each call over a
  Unix socket, where it is built; else grpc_api's grpc.aio server.
- ``app``: the HTTP app (Starlette, with a direct path for ``:predict``); its lifespan starts and stops gRPC.
- ``server``: the listening socket, uvicorn's settings and a server in a background thread.

What may not live here: the command line (``cli/serve.py`` parses the options and loads the config) and anything
of the pipeline. Of the project's own code this package imports only ``pipeline.errors`` (and ``tfx_compat``, if
it ever needs a TFX internal); it knows the pipeline only through the serving directory's layout. Its modules
import each other in one direction, never in a circle: ``formats``, ``settings`` and ``versions`` import none of
the others, ``app`` sits on top (``batching`` and ``repository`` on ``formats``, ``repository`` also on
``versions``, ``grpc_api`` on those three, ``grpc_bridge`` on ``grpc_api``, ``server`` on ``settings``). The Go
program under ``grpc_front/`` is built by ``make grpc-front``, never imported.
"""
