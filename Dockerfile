# One image for migrate, web, worker and beat (docker-compose.yml). The build
# context is the repository less .dockerignore: no .env, .venv, var or .git.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Code stays root's and read-only to the service; only var/ is writable
# (beat's schedule file).
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput \
    && useradd --create-home --uid 10001 app && chown app var
USER app
EXPOSE 8000
CMD ["gunicorn", "integration_site.wsgi", "--config", "gunicorn.conf.py"]
