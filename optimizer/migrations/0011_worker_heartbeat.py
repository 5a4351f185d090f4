from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("optimizer", "0010_batches"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text="host:pid of the worker process.", max_length=120, unique=True
                    ),
                ),
                (
                    "cluster",
                    models.CharField(help_text="The django-q2 cluster (queue) it serves.", max_length=100),
                ),
                ("host", models.CharField(max_length=100)),
                ("pid", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField()),
                ("beat_at", models.DateTimeField(db_index=True)),
                (
                    "rss_bytes",
                    models.PositiveBigIntegerField(
                        default=0, help_text="Its resident memory at the last beat."
                    ),
                ),
            ],
            options={
                "ordering": ["cluster", "name"],
            },
        ),
    ]
