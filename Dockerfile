# The driftloop image used by docker-compose.yml for every driftloop service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streaming ./streaming
COPY flows ./flows
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV DRIFTLOOP_HOME=/var/lib/driftloop
ENTRYPOINT []
CMD ["driftloop", "--help"]
