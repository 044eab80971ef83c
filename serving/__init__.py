"""The local TF Serving-compatible model server over the versions the Pusher wrote (``taxi-pipeline serve``).

Request formats, the model repository (versions, hot swap, canary), micro-batching and the HTTP app. Imports
nothing of ours but ``tfx_compat``; it knows the pipeline only through the serving directory's layout.
"""
