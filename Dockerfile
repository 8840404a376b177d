# Placespend API image. The database is a separate PostGIS server (see compose.yaml), reached
# through DATABASE_URL. The map's browser libraries are installed by npm in a first stage and
# copied in; the image itself has no Node.js.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin placespend

WORKDIR /app

# Pinned dependencies first, so code changes do not re-install them (the wheels carry GEOS,
# PROJ, GDAL and libpq, so no system libraries are needed).
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Only the project's own files (the packages listed in pyproject.toml), not .venv or local state.
COPY pyproject.toml README.md ./
COPY placespend/ placespend/
COPY allocation/ allocation/
COPY geo/ geo/
COPY boundaries/ boundaries/
COPY store/ store/
COPY api/ api/
COPY migrations/ migrations/
RUN pip install --no-deps . && rm -rf build *.egg-info
COPY --from=web /web/node_modules /app/web/node_modules
ENV PLACESPEND_WEB_MODULES=/app/web/node_modules

USER placespend
EXPOSE 8000
CMD ["placespend", "serve", "--host", "0.0.0.0", "--port", "8000"]
