# Placespend API image. The database is a separate PostGIS server (see compose.yaml), reached
# through DATABASE_URL; nothing here builds or needs a browser.
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

USER placespend
EXPOSE 8000
CMD ["placespend", "serve", "--host", "0.0.0.0", "--port", "8000"]
