"""SQL that more than one revision uses: expand creates the sync trigger, contract drops it, and contract's
downgrade creates it again."""

SYNC_FUNCTION = """
CREATE FUNCTION customers_sync_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.display_name := coalesce(NEW.display_name, NEW.fullname);
        NEW.fullname := coalesce(NEW.fullname, NEW.display_name);
    ELSIF NEW.fullname IS DISTINCT FROM OLD.fullname THEN
        NEW.display_name := NEW.fullname;
    ELSIF NEW.display_name IS DISTINCT FROM OLD.display_name THEN
        NEW.fullname := NEW.display_name;
    END IF;
    RETURN NEW;
END $$"""
SYNC_TRIGGER = ("CREATE TRIGGER customers_sync_name BEFORE INSERT OR UPDATE ON customers "
                "FOR EACH ROW EXECUTE FUNCTION customers_sync_name()")
DROP_SYNC = ("DROP TRIGGER customers_sync_name ON customers", "DROP FUNCTION customers_sync_name()")
