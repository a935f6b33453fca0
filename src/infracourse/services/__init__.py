"""Running the course services: readiness probes, the native launcher with one recipe per service, Docker
Compose, the system packages native mode needs, and Prometheus file-based discovery."""
