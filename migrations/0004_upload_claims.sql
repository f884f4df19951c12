-- When a confirm claimed an upload (status PROCESSING). A process that dies mid-confirm leaves the claim
-- behind; a claim older than the confirm timeout may be taken again.
ALTER TABLE uploads ADD COLUMN claimed_at timestamptz;
