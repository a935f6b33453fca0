"""A class on shared services: per-learner credentials created through each service's own access control
(`course classroom provision | revoke | list | grade | bench`), and what the hub needs to hand them out."""
