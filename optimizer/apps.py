from django.apps import AppConfig


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = "Prompt optimizer"

    def ready(self):
        from django_q.signals import post_spawn

        from optimizer import runqueue

        # Each worker process that starts (a cluster starting, or a worker replaced after a crash or
        # a timeout) sweeps once: runs lost by a worker that died are queued again without waiting
        # for the minute schedule, and the schedule itself is created if missing.
        post_spawn.connect(runqueue.on_worker_start, dispatch_uid="optimizer-sweep-on-worker-start")

        # Monitoring: each worker process keeps a heartbeat row (django-q2 has no health probe).
        from optimizer.monitoring import heartbeat

        post_spawn.connect(heartbeat.on_worker_start, dispatch_uid="monitoring-worker-heartbeat")
