-- A certificate is replaced when its target renews; only the newest
-- certificate of a target may renew after it has expired.
ALTER TABLE certs ADD COLUMN replaced_at INTEGER;
