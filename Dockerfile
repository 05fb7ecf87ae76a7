FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput \
    && useradd --create-home app && mkdir -p var && chown app var
USER app
EXPOSE 8000
CMD ["gunicorn", "integration_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
