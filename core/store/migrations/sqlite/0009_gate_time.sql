-- A ticket's gate decision: when the API's auth gate admitted the request
-- that submitted it. NULL where no gate stands (the desktop's IPC, the
-- controller's own submissions) and for tickets stored before this.
ALTER TABLE tickets ADD COLUMN gate_at_ms INTEGER;
