-- Staging serves production's chantiers without the people behind them
-- (recipes/atarys-staging.yaml): the client, a person or a company with its
-- contact details, becomes a label made from the row's id (the same label
-- at every refresh, so that staging's testers can find a chantier again).
-- Run by appliance-restore in the restore's own transaction: the data is
-- never committed unscrubbed.
UPDATE chantiers SET client = 'Client ' || id WHERE client IS NOT NULL;
