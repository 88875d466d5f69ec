# The workbook's provider as a service (see docker-compose.yml). Not used by the tests.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY emailkit ./emailkit
RUN pip install --no-cache-dir .
EXPOSE 8090
CMD ["emailkit", "provider", "--listen", "0.0.0.0:8090"]
