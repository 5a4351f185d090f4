"""The Backups page: staff only (anyone else gets 404, as for anything not theirs); restore for
superusers only. Thin callers of ``backups.services`` and ``backups.jobs``."""

from functools import wraps
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from backups import jobs, selectors, services
from backups.forms import BackupNowForm, BackupUploadForm, RestoreConfirmForm, UploadLimit
from backups.models import Backup
from optimizer.health import run_check

PAGE_SIZE = 50


def _only_for(allowed, view):
    """404 for anyone ``allowed`` refuses: the page's existence is not told (login is required
    site-wide)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not allowed(request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped


def staff_required(view):
    return _only_for(lambda user: user.is_staff, view)


def superuser_required(view):
    """A restore replaces every user's data, the users themselves included: superusers only."""
    return _only_for(lambda user: user.is_superuser, view)


def _page_context(request, *, upload_form=None, now_form=None) -> dict:
    """The whole page; "Back up now" shows the backup asked for (``?job=``) or the one under way."""
    page = Paginator(services.backups_listed(), PAGE_SIZE).get_page(request.GET.get("page"))
    job = jobs.job_status(request.GET.get("job") or jobs.current_token())
    return {
        "title": "Backups",
        "page": page,
        "freshness": selectors.backup_freshness(),
        "stale_hours": int(selectors.STALE_AFTER.total_seconds() // 3600),
        "job": job,
        "lock_minutes": jobs.LOCK_S // 60,
        "now_form": now_form or BackupNowForm(),
        "upload_form": upload_form or BackupUploadForm(),
        "keep_days": settings.BACKUP_KEEP_DAYS,
        "keep_last": settings.BACKUP_KEEP_LAST,
        "broker": run_check("task_broker"),  # only to warn when no worker runs
    }


@require_safe
@staff_required
def index(request):
    return render(request, "backups/index.html", _page_context(request))


@require_POST
@staff_required
def backup_now(request):
    """Queue a backup for the task worker; the page then follows it (``backup_progress``)."""
    form = BackupNowForm(request.POST)
    job, status = None, 200
    if form.is_valid():
        try:
            token = jobs.backup_now_start(user=request.user, note=form.cleaned_data["note"])
        except jobs.BackupRefused as refusal:
            form.add_error(None, str(refusal))
            status = 409
        else:
            if not request.htmx:
                return redirect(f"{reverse('backups:index')}?job={token}")
            job = jobs.job_status(token)
    else:
        status = 400
    if request.htmx:  # base.html's htmx-config swaps 2xx only: the refusal comes as a 200
        context = {"now_form": form, "job": job, "broker": run_check("task_broker")}
        return render(request, "backups/index.html#backup-now", context)
    return render(request, "backups/index.html", _page_context(request, now_form=form), status=status)


@require_safe
@never_cache
@staff_required
def backup_progress(request, token: str):
    """The live part of "Back up now": polled while the backup runs; once it has finished, the list
    and the last backup's age come along (out of band) and the polling stops."""
    job = jobs.job_status(token)
    context = {"job": job, "now_form": BackupNowForm(), "polled": True, "lock_minutes": jobs.LOCK_S // 60}
    if job is not None and job.state == "queued":
        context["broker"] = run_check("task_broker")  # to say so when no worker runs
    if job is None or job.finished:
        context |= _page_context(request) | {"job": job, "oob": True}
    return render(request, "backups/index.html#backup-now", context)


@require_safe
@staff_required
def download(request, pk: int):
    """The stored file as it is (encrypted or not), streamed, as an attachment: never a public URL."""
    backup = get_object_or_404(Backup, pk=pk)
    try:
        stream = services.backup_open(backup)
    except services.BackupError as error:
        return render(request, "backups/missing.html", {"message": str(error)}, status=404)
    return FileResponse(stream, as_attachment=True, filename=Path(backup.name).name)


@csrf_exempt  # checked below, once the size limit is in place (the check reads the body)
@require_POST
@staff_required
def upload(request):
    limit = UploadLimit(request)
    request.upload_handlers.insert(0, limit)
    return _upload(request, limit)


@csrf_protect
def _upload(request, limit: UploadLimit):
    form = BackupUploadForm(request.POST, request.FILES, limit=limit)
    if form.is_valid():
        file = form.cleaned_data["file"]
        try:
            backup = services.backup_import(file, filename=file.name, user=request.user)
        except services.BackupError as error:
            form.add_error("file", str(error))
        else:
            messages.success(request, f"Uploaded and verified as backup {backup.pk}: it can be restored.")
            return redirect("backups:index")
    return render(request, "backups/index.html", _page_context(request, upload_form=form), status=400)


# A restore runs in the request, not as a task: it is one transaction (a request cut off by the web
# worker's 60 s timeout leaves the database as it was), the one who asked sees its outcome at once,
# and what becomes of their own session, whose user row it may replace, is settled in the same
# request (a task's page, polled by a session the restore just ended, would land on the login page
# mid-swap). 100,000 usage records took 25 s here, safety backup included; for larger ones the page
# points to manage.py restore, which has no time limit.
@require_http_methods(["GET", "HEAD", "POST"])
@never_cache
@superuser_required
def restore(request, pk: int):
    """A dry run first (rows per model now and in the backup), then the restore once confirmed."""
    backup = get_object_or_404(Backup, pk=pk)
    form = RestoreConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return _restore(request, backup)  # it verifies the file again, before anything else
    try:
        plan = services.restore_plan(backup)
    except services.BackupError as error:
        return render(request, "backups/missing.html", {"message": str(error)}, status=404)
    context = {
        "title": "Restore",
        "backup": backup,
        "rows": _plan_rows(plan),
        "replaced": _counts_text(plan.current),
        "incoming": _counts_text(plan.incoming),
        "form": form,
    }
    return render(request, "backups/restore.html", context, status=400 if form.is_bound else 200)


def _restore(request, backup: Backup):
    who = (request.user.pk, request.user.get_username(), request.user.get_session_auth_hash())
    try:
        plan, safety = services.restore(backup, user=request.user)
    except services.BackupError as error:
        messages.error(request, str(error))
        return redirect("backups:index")
    done = f"Restored backup {backup.pk} ({_counts_text(plan.incoming)})."
    if safety is not None:
        done += f" The data it replaced is in backup {safety.pk}."
    return _after_restore(request, done, who)


def _after_restore(request, done: str, who: tuple[int, str, str]):
    """The restored users table may lack the one who restored, or hold another account under their
    id: then they are logged out and asked to log in again, rather than carry on as someone else."""
    user_id, username, session_hash = who
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if user is None or (user.get_username(), user.get_session_auth_hash()) != (username, session_hash):
        logout(request)
        messages.success(request, done)
        messages.info(request, "Your account is not in the backup as it was: log in again.")
        return redirect("login")
    messages.success(request, done)
    if not user.is_staff:
        return redirect("optimizer:optimize")  # the backup's account of theirs may not see backups
    return redirect("backups:index")


def _plan_rows(plan) -> list[dict]:
    return [
        {
            "label": label,
            "name": _name(label),
            "current": plan.current.get(label, 0),
            "incoming": count,
            "changes": plan.current.get(label, 0) != count,
        }
        for label, count in plan.incoming.items()
    ]


def _name(label: str, count: int = 2) -> str:
    try:
        meta = apps.get_model(label)._meta
    except LookupError:
        return label
    return str(meta.verbose_name if count == 1 else meta.verbose_name_plural)


def _counts_text(counts: dict[str, int]) -> str:
    """ "3 users, 1 prompt, 120 optimization runs...": the models that have rows."""
    return (
        ", ".join(f"{count:,} {_name(label, count)}" for label, count in counts.items() if count) or "no rows"
    )
