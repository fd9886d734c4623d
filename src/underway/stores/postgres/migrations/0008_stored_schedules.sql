-- Schedules managed at run time (docs/decisions/0018-stored-schedules.md).
--
-- A schedule put at run time keeps its whole definition here (JSON: rule, policies, args,
-- tenant), so every scheduler fires it, also one whose code never declared it. NULL for a
-- schedule declared in code: its definition lives in the code of the processes declaring it.
ALTER TABLE {schema}.underway_schedules ADD COLUMN definition text;

-- Schedulers say they are alive, so listings tell "no scheduler alive" apart from "ok".
CREATE TABLE {schema}.underway_schedulers (
    id          text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
