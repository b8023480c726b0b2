"""Models: everything a member can use, and who may use their own."""

from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from inference_club.gateway.web.catalog import usable_models
from inference_club.gateway.web.context import Web, form_text
from inference_club.protocol import SERVICE_TYPES
from inference_club.store import InvalidValue, NotFound
from inference_club.store.accounts import Account

TYPE_LABELS = {
    "llm": "Text (LLM)",
    "stt": "Speech to text",
    "tts": "Text to speech",
    "image": "Images",
}
# What the sharing control offers; "agent" forgets the gateway's setting.
SHARE_CHOICES = ("private", "network", "groups", "agent")


async def models(web: Web, request: Request, account: Account) -> Response:
    """``GET /models?type=llm``: usable models, optionally of one type."""
    services = web.services()
    chosen = request.query_params.get("type", "")
    everything = await usable_models(services, account.user.id)
    shown = [model for model in everything if not chosen or model.service_type == chosen]
    counts = {kind: sum(m.service_type == kind for m in everything) for kind in SERVICE_TYPES}
    groups = [group.name for group in await services.store.list_groups()]
    return web.render(
        request,
        "models.html",
        {
            "section": "models",
            "models": shown,
            "chosen": chosen if chosen in SERVICE_TYPES else "",
            "counts": counts,
            "total": len(everything),
            "type_labels": TYPE_LABELS,
            "groups": groups,
        },
        account=account,
    )


async def share_model(web: Web, request: Request, account: Account, form: FormData) -> Response:
    """``POST /models/share``: set who may use one of the member's own models."""
    store = web.services().store
    provider_name = form_text(form, "provider")
    model = form_text(form, "model")
    choice = form_text(form, "share")
    back = "/models" + ("?" + urlencode({"type": t}) if (t := form_text(form, "type")) else "")
    own = {provider.name for provider in await store.list_providers(account.user.name)}
    if provider_name not in own:
        # Another member's provider, or none: the same answer, which reveals nothing.
        return web.error(request, 404, "No such provider of yours.", account=account)
    if choice == "groups":
        chosen = [value for value in form.getlist("groups") if isinstance(value, str)]
        if not chosen:
            return web.error(request, 400, "Pick at least one group.", account=account)
        visibility = [f"group:{name}" for name in chosen]
    elif choice in ("private", "network"):
        visibility = [choice]
    elif choice == "agent":
        visibility = []
    else:
        return web.error(request, 400, "Choose private, network or groups.", account=account)
    try:
        await store.set_model_share(provider_name, model, visibility)
    except (InvalidValue, NotFound) as error:
        return web.error(request, 400, str(error).capitalize() + ".", account=account)
    described = ", ".join(visibility) if visibility else "as the agent announces"
    return web.redirect(
        back, flash=f"{model} on {provider_name}: now {described}.", request=request
    )
