"""Background jobs: the queue, the worker, the schedule, and their pages."""
