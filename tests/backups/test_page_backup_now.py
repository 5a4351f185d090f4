"""“Back up now”: queued for the task worker, one at a time, its progress polled by the page until
it is done or failed. The task is taken from the broker and run here, as the worker would."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from backups import jobs, services
from backups.models import Backup
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _clean(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    caches["default"].clear()
    broker = get_broker(django_settings.FAST_QUEUE)
    broker.purge_queue()
    yield
    broker.purge_queue()
    caches["default"].clear()


@pytest.fixture
def staff(db):
    return UserFactory(username="staffer", is_staff=True)


@pytest.fixture
def client(staff):
    client = Client()
    client.force_login(staff)
    return client


def queued_tasks() -> list[dict]:
    """What the worker would take from the fast queue, taken from it."""
    broker = get_broker(django_settings.FAST_QUEUE)
    tasks = []
    while broker.queue_size():
        tasks += [SignedPackage.loads(payload) for _, payload in broker.dequeue() or []]
    return tasks


def run_like_the_worker(task: dict):
    return import_string(task["func"])(*task["args"], **task["kwargs"])


def poll(client, token: str) -> str:
    response = client.get(reverse("backups:progress", args=[token]), **HTMX)
    assert response.status_code == 200 and "no-cache" in response["Cache-Control"]
    return response.content.decode()


def test_back_up_now_queues_one_task_and_the_page_follows_it_to_the_end(client, staff):
    response = client.post(reverse("backups:now"), {"note": "before the upgrade"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and "Queued: waiting for a task worker." in html
    assert "No task worker is running" in html  # none runs during the tests
    [task] = queued_tasks()
    token = task["args"][0]
    assert f'hx-get="{reverse("backups:progress", args=[token])}"' in html and 'hx-trigger="every 1s"' in html
    assert Backup.objects.count() == 0  # the worker makes it

    said = run_like_the_worker(task)

    record = Backup.objects.get()
    assert said == f"{record.name}: {record.size:,} bytes" and record.note == "before the upgrade"
    assert record.trigger == Backup.Trigger.PAGE and record.created_by == staff and record.status == "done"
    html = poll(client, token)
    assert f"Backup {record.pk} is done" in html and "hx-trigger" not in html.split('id="backup-list"')[0]
    assert 'id="backup-list" class="card" hx-swap-oob="true"' in html  # the list and age come along
    assert 'id="backup-freshness" hx-swap-oob="true"' in html and "Last good backup: 0" in html


def test_the_progress_shows_the_models_written_while_the_backup_runs(client, staff):
    client.post(reverse("backups:now"), **HTMX)
    [task] = queued_tasks()
    token = task["args"][0]
    record_progress = jobs.progress_recorder(token)
    seen = {}

    def progress(record, label, done, total):
        record_progress(record, label, done, total)
        if done == 3:
            seen["html"] = poll(client, token)

    services.backup_create(trigger=Backup.Trigger.PAGE, user=staff, progress=progress)

    total = len(services.MODELS)
    assert f"3 of {total} models written (last: {services.MODELS[2]})" in seen["html"]
    assert f'<progress class="backup-progress" max="{total}" value="3">' in seen["html"]
    assert 'hx-trigger="every 1s"' in seen["html"]  # still polling
    assert "hx-swap-oob" not in seen["html"]


def test_a_second_back_up_now_is_refused_while_the_first_is_under_way(client, staff):
    client.post(reverse("backups:now"), **HTMX)

    second = client.post(reverse("backups:now"), **HTMX)

    assert "already under way: wait for it to finish" in second.content.decode()
    [task] = queued_tasks()  # one task, not two
    run_like_the_worker(task)
    client.post(reverse("backups:now"), **HTMX)  # the first one finished: a new one is welcome
    assert len(queued_tasks()) == 1


def test_back_up_now_is_refused_while_another_backup_is_being_made(client):
    Backup.objects.create(name="/backups/scheduled.zip", trigger=Backup.Trigger.SCHEDULE)

    response = client.post(reverse("backups:now"))

    assert response.status_code == 409
    assert "A backup (schedule) is being made right now" in response.content.decode()
    assert queued_tasks() == [] and jobs.current_token() is None


def test_without_htmx_back_up_now_redirects_to_the_page_that_follows_it(client):
    response = client.post(reverse("backups:now"))

    [task] = queued_tasks()
    assert response.status_code == 302 and response["Location"].endswith(f"?job={task['args'][0]}")
    page = client.get(response["Location"]).content.decode()
    assert "Queued: waiting for a task worker." in page and "No task worker is running" in page
    assert "Queued" in client.get(reverse("backups:index")).content.decode()  # the one under way, shown


def test_a_task_delivered_twice_makes_one_backup(client):
    client.post(reverse("backups:now"), **HTMX)
    [task] = queued_tasks()

    run_like_the_worker(task)
    assert run_like_the_worker(task) == "nothing to do"

    assert Backup.objects.count() == 1


def test_a_failed_backup_says_why_and_frees_the_button(client, settings, tmp_path):
    client.post(reverse("backups:now"), **HTMX)
    [task] = queued_tasks()
    (tmp_path / "a-file").write_text("not a folder")
    settings.BACKUP_DIR = tmp_path / "a-file" / "backups"

    run_like_the_worker(task)

    html = poll(client, task["args"][0])
    assert "cannot be made" in html and "set BACKUP_DIR to a folder" in html and "hx-trigger" not in html
    assert jobs.current_token() is None


def test_an_unknown_job_stops_the_polling_with_a_word(client):
    html = poll(client, "f" * 32)

    assert "no longer known" in html and 'hx-trigger="every 1s"' not in html
    assert "no longer known" in poll(client, "not-a-token")


def test_a_backup_no_worker_took_for_minutes_stops_the_waiting(client):
    client.post(reverse("backups:now"), **HTMX)
    [task] = queued_tasks()
    token = task["args"][0]
    job = caches["default"].get(jobs.JOB.format(token=token))
    long_ago = job["queued_at"] - timedelta(seconds=jobs.LOCK_S + 1)
    caches["default"].set(jobs.JOB.format(token=token), job | {"queued_at": long_ago})

    html = poll(client, token)

    assert "No task worker has taken this backup for 6 minutes" in html and "hx-trigger" not in html
    assert 'id="backup-list" class="card" hx-swap-oob="true"' in html
