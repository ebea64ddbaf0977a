# Flex Template image for the Okta Personal lake pipeline (see README, "Run on Dataflow").
# One image serves as the template launcher and as the workers' SDK container, so the
# launcher and the workers run exactly the same pinned code.
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:latest AS launcher

FROM apache/beam_python3.11_sdk:2.77.0

COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

WORKDIR /template
COPY setup.py README.md ./
COPY common common
COPY schemas schemas
COPY okta_client okta_client
COPY storage storage
COPY transforms transforms
COPY sinks sinks
COPY sources sources
COPY streaming streaming
COPY pipeline pipeline
COPY tools tools
COPY dataflow dataflow
RUN pip install --no-cache-dir . && python -c "import pipeline.main, sources.okta.beam, sinks.lake.beam, streaming.okta_tail"

ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/dataflow/launch.py
ENV FLEX_TEMPLATE_PYTHON_SETUP_FILE=/template/setup.py
# Dependencies are already installed in the image: the launcher must not pip-install at launch time.
ENV PIP_NO_DEPS=True

ENTRYPOINT ["/opt/apache/beam/boot"]
