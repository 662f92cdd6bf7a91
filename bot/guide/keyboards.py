"""Inline keyboards shown with each message."""

from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain.schedule import LaterOption
from bot.guide.callbacks import (
    ANOTHER_COMPANY,
    DELETE_NO,
    DELETE_YES,
    KEEP_GOING,
    LATER_MENU,
    ON_COMPUTER,
    ON_PHONE,
    PASS_ON,
    REPEAT_NO,
    REPEAT_YES,
    RESUME,
    RUT_EDIT,
    RUT_OK,
    START_OVER,
    STOP_REMINDERS,
    GuideAction,
    guide_data,
    later_data,
    page_data,
    problem_data,
    verify_data,
)
from bot.guide.guide import CONFIRMATION_STEP, FINAL_STEP, Guide, Problem


def _button(guide: Guide, label: str, data: str, **values: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(guide.button(label, **values), callback_data=data)


def confirm_rut(guide: Guide) -> InlineKeyboardMarkup:
    """Offer to confirm or correct the company RUT."""
    return InlineKeyboardMarkup(
        [[_button(guide, "confirm_rut", RUT_OK), _button(guide, "edit_rut", RUT_EDIT)]]
    )


def repeat_completed(guide: Guide) -> InlineKeyboardMarkup:
    """Offer to repeat an authorization that is already complete."""
    return InlineKeyboardMarkup(
        [[_button(guide, "understood", REPEAT_NO)], [_button(guide, "repeat_anyway", REPEAT_YES)]]
    )


def keep_or_start_over(guide: Guide) -> InlineKeyboardMarkup:
    """Offer to carry on where the client is, or start from the beginning."""
    return InlineKeyboardMarkup(
        [[_button(guide, "keep_going", KEEP_GOING)], [_button(guide, "start_over", START_OVER)]]
    )


def resume(guide: Guide, step: int) -> InlineKeyboardMarkup:
    """Offer to resume an unfinished authorization at its step."""
    return InlineKeyboardMarkup([[_button(guide, "resume", RESUME, step=step)]])


def step(guide: Guide, number: int) -> InlineKeyboardMarkup:
    """Return the buttons of step `number`."""

    def action(label: str, what: GuideAction) -> InlineKeyboardButton:
        return _button(guide, label, guide_data(number, what))

    back = action("back", GuideAction.BACK)
    if number == 1:
        rows = [[portal(guide)], [action("next", GuideAction.NEXT)], [back]]
    elif number == CONFIRMATION_STEP:
        rows = [
            [action("pressed_save", GuideAction.SAVED_USER)],
            [action("data_mismatch", GuideAction.MISMATCH)],
            [back],
        ]
    elif number == FINAL_STEP:
        rows = [
            [action("saved_yes", GuideAction.SUCCESS)],
            [action("saved_no", GuideAction.NOT_SAVED)],
            [back],
        ]
    else:
        rows = [[back, action("next", GuideAction.NEXT)]]
    if number != 1:
        # The SII's session expires and a page gets closed: the way back in is on every step.
        rows.append([portal(guide)])
    rows.append([_button(guide, "remind_later", LATER_MENU)])
    rows.append([_button(guide, "problem", problem_data(number))])
    return InlineKeyboardMarkup(rows)


def portal(guide: Guide) -> InlineKeyboardButton:
    """Return the button that opens the SII page."""
    return InlineKeyboardButton(guide.button("open_portal"), url=guide.portal_url)


def _problem_rows(guide: Guide, step: int, menu: str | None) -> list[list[InlineKeyboardButton]]:
    return [
        [InlineKeyboardButton(guide.problem_label(p), callback_data=problem_data(step, p.key))]
        for p in guide.problems_at(step, menu)
    ]


def problem_menu(guide: Guide, step: int) -> InlineKeyboardMarkup:
    """List the problems that happen at this step, and the way back."""
    rows = _problem_rows(guide, step, None)
    rows.append([_button(guide, "back_to_step", KEEP_GOING, step=step)])
    return InlineKeyboardMarkup(rows)


def problem_answer(guide: Guide, step: int, problem: Problem) -> InlineKeyboardMarkup:
    """Offer what helps after a problem's answer, the firm, and the way back to the step.

    An answer that lists other problems (the SII's error codes) offers them as buttons.
    """
    rows = _problem_rows(guide, step, problem.key)
    if problem.ask_proof:
        rows.append([_button(guide, "send_proof", problem_data(step, problem.key, proof=True))])
    if problem.portal_button:
        rows.append([portal(guide)])
    if problem.offer_later:
        rows.append([_button(guide, "remind_later", LATER_MENU)])
    if not problem.ask_text:
        rows.append([_button(guide, "not_solved", problem_data(step, problem.key, to_firm=True))])
    rows.append([_button(guide, "back_to_step", KEEP_GOING, step=step)])
    return InlineKeyboardMarkup(rows)


def back_to_step(guide: Guide, step: int) -> InlineKeyboardMarkup:
    """Offer the way back to the client's step."""
    return InlineKeyboardMarkup([[_button(guide, "back_to_step", KEEP_GOING, step=step)]])


def ask_device(guide: Guide) -> InlineKeyboardMarkup:
    """Ask whether the client is at the computer or on the phone."""
    return InlineKeyboardMarkup(
        [[_button(guide, "on_computer", ON_COMPUTER)], [_button(guide, "on_phone", ON_PHONE)]]
    )


def on_phone(guide: Guide) -> InlineKeyboardMarkup:
    """Once the chat is open on the computer, carry on; or be reminded later."""
    return InlineKeyboardMarkup(
        [
            [_button(guide, "now_on_computer", ON_COMPUTER)],
            [_button(guide, "remind_later", LATER_MENU)],
        ]
    )


def pass_on(guide: Guide) -> InlineKeyboardMarkup:
    """Offer to hand the procedure to the person whose certificate it takes."""
    return InlineKeyboardMarkup([[_button(guide, "pass_on", PASS_ON)]])


def after_done(guide: Guide) -> InlineKeyboardMarkup:
    """After a completion, offer to authorize another company."""
    return InlineKeyboardMarkup([[_button(guide, "another_company", ANOTHER_COMPANY)]])


def confirm_deletion(guide: Guide) -> InlineKeyboardMarkup:
    """Ask before deleting the client's data."""
    return InlineKeyboardMarkup(
        [[_button(guide, "delete_yes", DELETE_YES)], [_button(guide, "delete_no", DELETE_NO)]]
    )


def ask_rut(guide: Guide) -> InlineKeyboardMarkup:
    """Offer, while the RUT is asked, to be reminded later instead."""
    return InlineKeyboardMarkup([[_button(guide, "remind_later", LATER_MENU)]])


def later_options(guide: Guide, options: list[LaterOption], tz: ZoneInfo) -> InlineKeyboardMarkup:
    """Offer the times a client can pick to be reminded."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(guide.later_label(o, tz), callback_data=later_data(o.key))]
            for o in options
        ]
    )


def reminder(guide: Guide) -> InlineKeyboardMarkup:
    """Continue where the client left off, or stop reminders."""
    return InlineKeyboardMarkup(
        [[_button(guide, "continue", RESUME)], [_button(guide, "stop_reminders", STOP_REMINDERS)]]
    )


def not_saved(guide: Guide) -> InlineKeyboardMarkup:
    """Offer, after a missing confirmation, to redo from step 5, confirm after all, or help."""
    return InlineKeyboardMarkup(
        [
            [
                _button(
                    guide, "back_to_step_5", guide_data(FINAL_STEP, GuideAction.BACK_TO_PERMISSIONS)
                )
            ],
            [_button(guide, "saved_yes", guide_data(FINAL_STEP, GuideAction.SUCCESS))],
            [_button(guide, "problem", problem_data(FINAL_STEP))],
        ]
    )


def firm_verification(guide: Guide, completion: int) -> InlineKeyboardMarkup:
    """Let the firm confirm, or deny, that the user shows up in the SII."""
    return InlineKeyboardMarkup(
        [
            [
                _button(guide, "verify", verify_data(completion, found=True)),
                _button(guide, "reject", verify_data(completion, found=False)),
            ]
        ]
    )


def pages(
    guide: Guide, listing: str, page: int, total_pages: int, since: str | None = None
) -> InlineKeyboardMarkup | None:
    """Return previous/next buttons for a paginated firm listing (None for one page)."""
    row = []
    if page > 1:
        row.append(_button(guide, "previous_page", page_data(listing, page - 1, since)))
    if page < total_pages:
        row.append(_button(guide, "next_page", page_data(listing, page + 1, since)))
    return InlineKeyboardMarkup([row]) if row else None
