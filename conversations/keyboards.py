"""Inline keyboards shown with each message."""

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from conversations.callbacks import (
    KEEP_GOING,
    REPEAT_NO,
    REPEAT_YES,
    RESUME,
    RUT_EDIT,
    RUT_OK,
    START_OVER,
    GuideAction,
    guide_data,
)
from conversations.guide import CONFIRMATION_STEP, FINAL_STEP, Guide


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
        rows = [
            [InlineKeyboardButton(guide.button("open_portal"), url=guide.portal_url)],
            [action("next", GuideAction.NEXT)],
            [back],
        ]
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
    return InlineKeyboardMarkup(rows)


def not_saved(guide: Guide) -> InlineKeyboardMarkup:
    """Offer, after a missing confirmation, to redo from step 5 or confirm after all."""
    return InlineKeyboardMarkup(
        [
            [
                _button(
                    guide, "back_to_step_5", guide_data(FINAL_STEP, GuideAction.BACK_TO_PERMISSIONS)
                )
            ],
            [_button(guide, "saved_yes", guide_data(FINAL_STEP, GuideAction.SUCCESS))],
        ]
    )
