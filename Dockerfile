# The pipeline image for Vertex AI Pipelines / Kubeflow Pipelines (and Dataflow workers, via --sdk_container_image):
# the official TFX image of the pinned version plus this package, so the dotted paths
# (models.trainer.run_fn, models.preprocessing.preprocessing_fn, pipeline.components.*) import inside it.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/taxi-pipeline:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/taxi-pipeline:0.1.0
#   (or: gcloud builds submit --tag REGION-docker.pkg.dev/PROJECT/REPO/taxi-pipeline:0.1.0 .)
# then set container.image in the profile (or --set container.image=...) and compile.
ARG TFX_VERSION=1.16.0
FROM gcr.io/tfx-oss-public/tfx:${TFX_VERSION}

WORKDIR /pipeline
# The image already has TFX and its pinned dependencies: install only this package, changing no dependency.
# Steps import models.*, pipeline.components.* and tfx_compat only (never pipeline.config), which run on the
# image's Python. The command line, the server and the run explorer are not needed in the image.
COPY setup.py ./
COPY pipeline ./pipeline
COPY models ./models
COPY tfx_compat ./tfx_compat
COPY schema ./schema
RUN python -m pip install --no-cache-dir --no-deps . \
    && python -c "import models.trainer, pipeline.components.validation_gate, pipeline.components.model_selection, tfx_compat.csv_example_gen"
ENV TF_USE_LEGACY_KERAS=1
# The TFX image's entrypoint (the KFP v2 launcher / Beam boot) is kept: no ENTRYPOINT or CMD here.
