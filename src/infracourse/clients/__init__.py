"""Client plumbing per technology: Kafka and RabbitMQ client settings and logging, the RabbitMQ management
API, PromQL over the Prometheus HTTP API, gRPC code generation and the buf CLI."""
