"""The orders service of the capstone (lesson 19), packaged to be configured (16), containerised (17) and
deployed (18): products read cache-aside, orders written with their outbox event in one transaction, a relay
publishing the outbox to Kafka, RED metrics, health endpoints and a graceful drain on SIGTERM."""

__version__ = "0.1.0"
