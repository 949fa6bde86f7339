"""`redialer start|add|pause|resume|stop|opt-out|progress|history|pseudonym|forget|worker|server`.

The Temporal client and the campaign helpers are imported inside the commands that use them, so
that `redialer validate` and `redialer plan` start in a fraction of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from redialer.loading import InvalidInput, load_recipients
from redialer.recipients import normalise_phone
from redialer.settings import get_settings
from starter.output import EXIT_INVALID, console, errors, fail, print_json
from starter.spec_commands import SpecPath, load_or_exit

if TYPE_CHECKING:
    from temporalio.client import Client

    from redialer.payloads import CampaignProgress, RecipientHistory
    from starter.inspection import Answer

DEFAULT_DB = Path(".redialer/temporal.db")

T = TypeVar("T")

Address = Annotated[
    str | None,
    typer.Option("--address", envvar="TEMPORAL_ADDRESS", help="Temporal frontend host:port."),
]
CampaignId = Annotated[str, typer.Argument(help="The campaign id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Phone = Annotated[str, typer.Argument(help="The number, E.164.")]
Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Store URL, read when no worker answers (default: REDIALER_DATABASE_URL).",
    ),
]


def _run(
    address: str | None,
    action: Callable[[Client], Awaitable[T]],
    *,
    unreachable: Callable[[str], Awaitable[T]] | None = None,
) -> T:
    """Connect, act, and turn Temporal's errors into one clear line. With `unreachable`, a
    Temporal that cannot be reached gets that answer (given why) instead of an error."""
    from temporalio.service import RPCError, RPCStatusCode

    from starter.client import connect

    settings = get_settings()
    target = address or settings.temporal_address

    async def go() -> T:
        try:
            client = await connect(settings, address=target)
        except RuntimeError as exc:
            if unreachable is not None:
                return await unreachable(f"Temporal at {target} is not reachable")
            fail(f"cannot reach Temporal at {target} ({exc}); start one with `redialer server`")
        return await action(client)

    try:
        return asyncio.run(go())
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"not found at {target}: {exc.message}")
        fail(f"Temporal refused the request: {exc.message}")


def start(
    spec_path: SpecPath,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until a fixed campaign completes.")
    ] = False,
    address: Address = None,
) -> None:
    """Start a campaign from a spec file."""
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from starter import campaigns

    spec = load_or_exit(spec_path).value
    settings = get_settings()
    if settings.real_provider and spec.call is None:
        fail(
            f"call: missing: REDIALER_DIALER={settings.dialer.value} places real calls, so the"
            ' campaign needs a `call` section saying what an answered call does (e.g. {"twiml":'
            ' "<Response><Say>Hello {{name}}</Say></Response>"})',
            code=EXIT_INVALID,
        )

    async def go(client: Client) -> None:
        try:
            handle = await campaigns.start_campaign(client, spec, task_queue=settings.task_queue)
        except ValueError as exc:
            fail(str(exc), code=EXIT_INVALID)
        except WorkflowAlreadyStartedError:
            fail(
                f"campaign_id: {spec.campaign_id!r}: a campaign with this id already exists;"
                " campaign ids are never reused (so nobody is called twice by accident)",
                code=EXIT_INVALID,
            )
        console.print(
            f"started campaign {spec.campaign_id} ({len(spec.recipients)} recipients,"
            f" workflow {handle.id})"
        )
        if wait:
            if spec.long_living:
                fail(
                    "--wait: a long-living campaign never completes by itself; use `redialer stop`",
                    code=EXIT_INVALID,
                )
            try:
                result = await handle.result()
            except WorkflowFailureError as exc:
                fail(f"campaign {spec.campaign_id} failed: {exc.cause}")
            console.print(
                f"campaign {spec.campaign_id} {result.state.value}: "
                + ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items()))
            )

    _run(address, go)


def add(
    campaign_id: CampaignId,
    file: Annotated[
        Path, typer.Argument(help="Recipients: JSON/YAML list or CSV with a phone column.")
    ],
    address: Address = None,
) -> None:
    """Add recipients to a running campaign (a number already in it is not called again)."""
    try:
        loaded = load_recipients(file, limits=get_settings().limits)
    except InvalidInput as exc:
        errors.print(f"{exc.source}: {len(exc.problems)} problem(s); nothing was added")
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False)
        raise typer.Exit(EXIT_INVALID) from exc
    for warning in loaded.warnings:
        errors.print(f"warning: {warning}", markup=False)
    from starter import campaigns

    sent = _run(address, lambda c: campaigns.add_recipients(c, campaign_id, loaded.value))
    console.print(f"sent {sent} recipients to campaign {campaign_id}")


def _control(action: str, campaign_id: str, address: str | None, phone: str | None = None) -> None:
    """Send an acknowledged control command; print what happened, or exit 1 with the reason
    the campaign refused it."""
    from redialer.payloads import CampaignAction
    from starter import campaigns

    async def go(client: Client) -> str:
        try:
            result = await campaigns.control(
                client, campaign_id, CampaignAction(action), phone=phone
            )
        except campaigns.ControlRefused as exc:
            fail(str(exc))
        return result.detail

    console.print(f"campaign {campaign_id} {_run(address, go)}")


def pause(campaign_id: CampaignId, address: Address = None) -> None:
    """No new dials until resumed; waiting retries wait."""
    _control("pause", campaign_id, address)


def resume(campaign_id: CampaignId, address: Address = None) -> None:
    """Dial again after a pause."""
    _control("resume", campaign_id, address)


def stop(campaign_id: CampaignId, address: Address = None) -> None:
    """No dial after this; waiting recipients end canceled; calls in progress finish."""
    _control("stop", campaign_id, address)


def _e164_or_exit(phone: str) -> str:
    try:
        return normalise_phone(phone)
    except ValueError as exc:
        fail(f"phone: {phone!r}: {exc}", code=EXIT_INVALID)


def opt_out(
    campaign_id: CampaignId,
    phone: Phone,
    address: Address = None,
) -> None:
    """Never call this number again, in this campaign or any later one."""
    e164 = _e164_or_exit(phone)
    _control("opt_out", campaign_id, address, phone=e164)


def pseudonym(
    phone: Phone,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Also print its workflow id in this campaign.")
    ] = None,
) -> None:
    """The pseudonym that stands for a number in Temporal, and the query that finds its
    workflows (Web UI search, `temporal workflow list`)."""
    from redialer.pseudonyms import NoPseudonymKey, Pseudonyms
    from workflows.ids import recipient_workflow_id

    e164 = _e164_or_exit(phone)
    pseudonyms = Pseudonyms.from_settings(get_settings())
    if not pseudonyms.has_key:
        fail(str(NoPseudonymKey("`redialer pseudonym`")))
    name = pseudonyms.pseudonym(e164)
    key = pseudonyms.id_for(e164)
    query = f'RecipientPhone="{key}"'
    console.print(name, markup=False)
    if not pseudonyms.enabled:
        console.print(
            "(pseudonyms are off (REDIALER_PSEUDONYMIZE): Temporal holds the number itself)",
            markup=False,
        )
    console.print(f"query:       {query}", markup=False)
    console.print(f"             temporal workflow list --query '{query}'", markup=False)
    if campaign is not None:
        console.print(f"workflow id: {recipient_workflow_id(campaign, key)}", markup=False)


#: `forget` lists at most this many workflow ids (and says how many more).
LISTED_WORKFLOWS = 20


def forget(
    phone: Phone,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database: Annotated[
        str | None,
        typer.Option("--database", help="Store URL (default: REDIALER_DATABASE_URL)."),
    ] = None,
) -> None:
    """Erase a number and its person's data from the store (a right-to-erasure request): counts
    and outcomes stay, an opt-out stays as a pseudonym (so the number is still never called)."""
    from sqlalchemy.engine import make_url

    from redialer.pseudonyms import NoPseudonymKey, Pseudonyms
    from redialer.store.store import ForgetRefused, Store

    e164 = _e164_or_exit(phone)
    settings = get_settings()
    pseudonyms = Pseudonyms.from_settings(settings)
    if not pseudonyms.has_key:
        fail(str(NoPseudonymKey("`redialer forget` (an opt-out is kept as a pseudonym)")))
    url = database or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(str(parsed.database)).exists():
            fail(f"no store at {url} (set REDIALER_DATABASE_URL or --database)")
    if not yes:
        typer.confirm(
            f"Erase {e164} and its recipients' variables from the store"
            f" {parsed.render_as_string(hide_password=True)}?",
            abort=True,
        )
    store = Store.open(url, pseudonyms=pseudonyms)
    try:
        result = store.forget(e164)
    except ForgetRefused as exc:
        fail(str(exc))
    finally:
        store.close()
    if not result.found:
        console.print(f"{e164} is not in the store: nothing to erase", markup=False)
        return
    lines = [
        f"forgot {e164}; the store now names it {result.phone_key}",
        f"  {result.recipients} campaign recipient(s): number replaced by its pseudonym,"
        " variables and metadata erased (status and attempts kept: reports count them)",
        f"  {result.call_records} call record(s): number replaced, variables erased (outcomes,"
        " times and attempt numbers kept)",
        f"  suppression kept under the pseudonym: {result.suppressed} (never called again)"
        if result.suppressed
        else "  not on the suppression list",
        f"  {result.rewritten} id(s) and key(s) that held the number now hold the pseudonym",
    ]
    ids = result.workflow_ids
    if ids:
        encrypted = settings.encryption_keys is not None
        lines += [
            f"left in Temporal until the namespace's retention period: {len(ids)} workflow"
            " history(ies) whose inputs and results hold the number and its variables, "
            + (
                "encrypted (unreadable without REDIALER_ENCRYPTION_KEYS) if the keys were set"
                " when they ran"
                if encrypted
                else "in clear text where REDIALER_ENCRYPTION_KEYS was not set when they ran"
            ),
            *(f"    {w}" for w in ids[:LISTED_WORKFLOWS]),
        ]
        if len(ids) > LISTED_WORKFLOWS:
            lines.append(f"    ... and {len(ids) - LISTED_WORKFLOWS} more")
        lines.append("  to delete them sooner: temporal workflow delete --workflow-id ID")
    provider_calls = [c for c in result.call_ids if not c.startswith("sim-")]
    if provider_calls:
        lines.append(
            f"the provider keeps its own record of {len(provider_calls)} call(s) (ask it to"
            f" erase them): {', '.join(provider_calls[:LISTED_WORKFLOWS])}"
        )
    for line in lines:
        console.print(line, markup=False)


def progress_json(p: CampaignProgress) -> dict[str, Any]:
    return p.model_dump(mode="json", exclude={"queued"})


def progress(
    campaign_id: CampaignId,
    as_json: AsJson = False,
    address: Address = None,
    database: Database = None,
) -> None:
    """Counts per status (from the store when no worker answers)."""
    from starter import inspection

    answer = _inspect(
        address,
        lambda c: inspection.progress(c, campaign_id, database=database),
        lambda why: inspection.unreachable(
            "progress", campaign_id, None, database=database, why=why
        ),
    )
    p = answer.value
    lines = inspection.line_usage(campaign_id, database=database)
    if as_json:
        print_json(progress_json(p) | {"source": answer.source.value, "lines": lines})
        return
    console.print(
        f"[bold]{p.campaign_id}[/bold] {p.state.value}: {p.final}/{p.total} final,"
        f" {p.active} active ({p.queued} queued)"
    )
    for status, n in sorted(p.by_status.items(), key=lambda kv: -kv[1]):
        console.print(f"  {status:<22} {n}")
    if lines and (
        lines["campaign"]["in_use"] or lines["campaign"]["waiting"] or lines["account"]["cap"]
    ):
        account = lines["account"]
        cap = f"/{account['cap']}" if account["cap"] else ""
        console.print(
            f"  lines: {lines['campaign']['in_use']} in use, {lines['campaign']['waiting']}"
            f" waiting for one; account: {account['in_use']}{cap} in use,"
            f" {account['waiting']} waiting",
            markup=False,
        )
    _print_source(answer)


def history_json(h: RecipientHistory) -> dict[str, Any]:
    """The call-report shape the seed products use."""
    return {
        "attempts": [
            {
                "attempt": a.attempt,
                "outcome": a.outcome.value,
                "started_at": a.started_at.isoformat(),
                "ended_at": a.ended_at.isoformat(),
                "call_id": a.call_id,
            }
            for a in h.attempts
        ],
        "status": h.status,
        "retry_group_id": h.retry_group_id,
        "next_attempt_at": h.next_attempt.at.isoformat() if h.next_attempt else None,
    }


def history(
    campaign_id: CampaignId,
    phone: Phone,
    as_json: AsJson = False,
    address: Address = None,
    database: Database = None,
) -> None:
    """Every attempt of one recipient, its status, and the next attempt (from the store when no
    worker answers)."""
    e164 = _e164_or_exit(phone)
    from starter import inspection

    answer = _inspect(
        address,
        lambda c: inspection.history(c, campaign_id, e164, database=database),
        lambda why: inspection.unreachable(
            "history", campaign_id, e164, database=database, why=why
        ),
    )
    h = answer.value
    if as_json:
        print_json(history_json(h) | {"source": answer.source.value})
        return
    console.print(
        f"[bold]{h.phone}[/bold] ({h.timezone}) {h.status}"
        + (f": {h.final_reason}" if h.final_reason else "")
    )
    for a in h.attempts:
        console.print(
            f"  attempt {a.attempt:>2}  {a.started_at:%Y-%m-%d %H:%M:%S %Z}"
            f"  {a.outcome.value:<15} {a.call_id or '(not dialed)'}",
            markup=False,
        )
    if h.next_attempt:
        why = ", ".join(d.describe() for d in h.next_attempt.deferred)
        console.print(
            f"  next: attempt {h.next_attempt.attempt} at {h.next_attempt.at.isoformat()}"
            + (f" (deferred: {why})" if why else ""),
            markup=False,
        )
    _print_source(answer)


def _inspect(
    address: str | None,
    action: Callable[[Client], Awaitable[Answer[T]]],
    unreachable: Callable[[str], Awaitable[Answer[T]]],
) -> Answer[T]:
    """`_run` for progress and history, which the store answers when no worker does (or no
    Temporal at all)."""
    from starter.inspection import NotInStore

    try:
        return _run(address, action, unreachable=unreachable)
    except NotInStore as exc:
        fail(str(exc))


def _print_source(answer: Answer[Any]) -> None:
    line = answer.source_line()
    if line:
        console.print(line, markup=False)


def worker() -> None:
    """Run a worker (settings from REDIALER_* and TEMPORAL_* variables)."""
    import worker as worker_module

    worker_module.main()


def api(
    host: Annotated[str | None, typer.Option(help="Interface (REDIALER_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (REDIALER_API_PORT).")] = None,
) -> None:
    """The HTTP service: the /v1 REST API, provider callbacks, health checks."""
    from service.app import serve

    settings = get_settings()
    serve(settings, host=host or settings.api_host, port=port or settings.api_port)


def server(
    port: Annotated[int, typer.Option(help="Temporal frontend port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Web UI port.")] = 8233,
    db: Annotated[Path, typer.Option(help="Persistence file (SQLite).")] = DEFAULT_DB,
    ui_codec_endpoint: Annotated[
        str | None,
        typer.Option(
            "--ui-codec-endpoint",
            callback=_codec_endpoint,
            help="Codec endpoint with which the Web UI shows encrypted payloads decrypted, e.g."
            " http://127.0.0.1:8000/codec: `redialer api` with REDIALER_ENCRYPTION_KEYS,"
            " REDIALER_CODEC_ENDPOINT=true and REDIALER_CODEC_CORS_ORIGIN set to the Web UI's"
            " origin.",
        ),
    ] = None,
) -> None:
    """The embedded Temporal dev server with the Web UI and the search attributes registered."""
    from starter.server import exec_server

    console.print(f"Temporal on 127.0.0.1:{port}, Web UI http://127.0.0.1:{ui_port}, data in {db}")
    if ui_codec_endpoint is not None:
        console.print(f"The Web UI decrypts payloads with {ui_codec_endpoint}")
    exec_server(  # signals reach the server: no orphan
        port=port, ui_port=ui_port, db=db, ui_codec_endpoint=ui_codec_endpoint
    )


def _codec_endpoint(url: str | None) -> str | None:
    from starter.server import check_codec_endpoint

    try:
        return None if url is None else check_codec_endpoint(url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def demo(
    recipients: Annotated[int, typer.Option(min=5, max=2000, help="How many recipients.")] = 60,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(
        ".redialer/demo"
    ),
    keep: Annotated[
        bool | None,
        typer.Option(
            "--keep/--no-keep",
            help="Keep the server up for the Web UI (default: when interactive).",
        ),
    ] = None,
) -> None:
    """Run a demo campaign end to end on the embedded server with the simulated dialer."""
    from starter.demo import run_demo

    run_demo(recipients=recipients, workdir=workdir, keep=keep)
