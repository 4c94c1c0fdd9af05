FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
# no dev tools, no embedded PostgreSQL/Redis: the services come from docker-compose (DATABASE_URL, REDIS_URL)
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-default-groups --no-install-project
COPY banxway ./banxway
RUN uv sync --locked --no-default-groups
ENV PATH="/app/.venv/bin:$PATH"
# not root: the processes run as `banxway`, who owns only the data directory
RUN useradd --system --create-home --uid 10001 banxway && mkdir -p /data && chown banxway /data
USER banxway
EXPOSE 8000
CMD ["banxway", "serve", "--host", "0.0.0.0"]
