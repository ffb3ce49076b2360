# StaySync API image. Needs DATABASE_URL (PostgreSQL >= 15); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin staysync

WORKDIR /app

# Dependencies first (pinned in pyproject.toml), so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alembic.ini schema.graphql ./
COPY migrations ./migrations
COPY domain ./domain
COPY db ./db
COPY app ./app

# Editable on purpose: db/migrate.py finds alembic.ini (and migrations/) next to its package,
# which a plain `pip install .` would move into site-packages, where migrating fails with
# "No 'script_location' key found in configuration".
RUN pip install --no-deps -e .

USER staysync
# DATA_DIR matters only when DATABASE_URL is unset (embedded PostgreSQL): a folder the user can write.
ENV HOST=0.0.0.0 \
    APP_ENV=production \
    PORT=3001 \
    DATA_DIR=/home/staysync/data

EXPOSE 3001

# No curl in slim: ask /health with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '3001'), timeout=4)"

CMD ["staysync", "serve", "--host", "0.0.0.0"]
