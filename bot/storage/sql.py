"""SQL shared by more than one store (all parameterized; only constants are joined)."""

# Every query reading whole authorizations starts with this, so authorization_from_row() fits all.
SELECT_AUTHORIZATIONS = (
    "SELECT company_rut, client_chat_id, client_user_id, client_name, client_username, step, "
    "started_at, last_activity_at, completed_at, reminders_sent, opted_out_at, blocked_at, "
    "invited_name, verified_at, verified_by, proof_file_id, proof_reading FROM authorizations "
)
SELECT_AUTHORIZATION = SELECT_AUTHORIZATIONS + "WHERE company_rut = ?"

SELECT_HANDOFF = "SELECT id, chat_id, user_id, company_rut, step, problem, closed_at FROM handoffs "
ANONYMIZE = (
    "UPDATE authorizations SET client_chat_id = NULL, client_user_id = NULL, "
    "client_name = NULL, client_username = NULL, invited_name = NULL, proof_file_id = NULL, "
    "proof_reading = NULL "
    "WHERE company_rut = ?"
)

# Parameters: the company, then EventKind.COMPLETED.
DELETE_NOTICES = (
    "DELETE FROM outbox WHERE ref IN (SELECT id FROM events WHERE company_rut = ? AND kind = ?)"
)

MARK_SQL = {
    "opted_out_at": "UPDATE authorizations SET opted_out_at = ? WHERE company_rut = ?",
    "blocked_at": "UPDATE authorizations SET blocked_at = ? WHERE company_rut = ?",
}
