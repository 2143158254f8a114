-- Media (docs/media.md): the fetch job written with its message (new, or a placeholder replaced by media; none
-- for text or outbound), the claim's lease and fence, complete and fail (permanent, backoff, max attempts), a
-- batch holding for its media at most media_wait, retention, and the whatsapp-media bucket readable exactly
-- with the conversation.
begin;
select plan(33);

-- Routed by prospect: Ana's customer on number MEDIA1, and Beto's.
insert into public.teams (id, name) values ('17000000-0000-0000-0000-000000000001', 'M1');
create temp table u (name text primary key, id uuid not null);
grant select on u to authenticated;
insert into u values
  ('ana', tests.create_user('ana@media.test', 'executive', '17000000-0000-0000-0000-000000000001')),
  ('beto', tests.create_user('beto@media.test', 'executive', '17000000-0000-0000-0000-000000000001')),
  ('coord', tests.create_user('coord@media.test', 'coordinator', '17000000-0000-0000-0000-000000000001'));
create function pg_temp.id(p_name text) returns uuid language sql stable as $$ select id from u where name = p_name $$;
grant execute on function pg_temp.id(text) to authenticated;
insert into public.prospects (team_id, executive_id, name, phone)
values ('17000000-0000-0000-0000-000000000001', pg_temp.id('ana'), 'Cliente Ana', '+5215517000001'),
       ('17000000-0000-0000-0000-000000000001', pg_temp.id('beto'), 'Cliente Beto', '+5215517000002');

create function pg_temp.t(p_time text) returns timestamptz language sql immutable as $$
  select ('2026-01-01 ' || p_time || '+00')::timestamptz $$;
create function pg_temp.arrive(p_from text, p_wamid text, p_type text, p_object jsonb, p_at timestamptz)
returns jsonb language sql as $$
  select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
    'contacts', jsonb_build_array(tests.contact(p_from, 'Cliente ' || p_from)),
    'messages', jsonb_build_array(tests.msg(p_wamid, p_type, p_object, p_from))), 'MEDIA1')), p_at);
$$;
create function pg_temp.msg(p_wamid text) returns public.messages language sql stable as $$
  select * from public.messages where wamid = p_wamid $$;
create function pg_temp.job(p_wamid text) returns wa.media_jobs language sql stable as $$
  select j.* from wa.media_jobs j join public.messages m on m.id = j.message_id where m.wamid = p_wamid $$;
create function pg_temp.buffer(p_wamid text) returns wa.buffers language sql stable as $$
  select b.* from wa.buffers b join public.messages m on m.conversation_id = b.conversation_id where m.wamid = p_wamid $$;

-- 1. Jobs are written with the message, in the ingest's transaction.
select pg_temp.arrive('5215517000001', 'wamid.MA1', 'image', '{"id": "9001", "mime_type": "image/jpeg"}',
                      pg_temp.t('10:00:00'));
select is((pg_temp.msg('wamid.MA1')).media_state, 'pending', 'an inbound photo is pending');
select is((pg_temp.job('wamid.MA1')).media_id, '9001', 'its fetch job names the Graph media id');
select is((pg_temp.job('wamid.MA1')).phone_number_id, 'MEDIA1', 'and the business number to resolve it with');
select is((pg_temp.job('wamid.MA1')).run_at, pg_temp.t('10:00:00'), 'due at once');
select pg_temp.arrive('5215517000001', 'wamid.MT1', 'text', '{"body": "hola"}', pg_temp.t('10:00:01'));
select is((select count(*)::integer from wa.media_jobs j join public.messages m on m.id = j.message_id
           where m.wamid = 'wamid.MT1'), 0, 'a text has no job');
select is((pg_temp.msg('wamid.MT1')).media_state, null, 'nor a media state');
select pg_temp.arrive('5215517000001', 'wamid.MX1', 'document', '{"mime_type": "application/pdf"}',
                      pg_temp.t('10:00:02'));
select is(row((pg_temp.msg('wamid.MX1')).media_state, (pg_temp.msg('wamid.MX1')).media_error),
          row('failed'::text, 'the message carries no media id'::text), 'media without an id fails at once');
select wa.ingest_webhook(tests.webhook(tests.change(jsonb_build_object(
  'contacts', jsonb_build_array(tests.contact('5215517000002', 'Cliente Beto')),
  'messages', jsonb_build_array('{"from": "5215517000002", "id": "wamid.MB1", "timestamp": "1767261600",
    "type": "unsupported", "errors": [{"code": 131060, "title": "unavailable"}]}'::jsonb)), 'MEDIA1')),
  pg_temp.t('10:00:03'));
select is((select count(*)::integer from wa.media_jobs j join public.messages m on m.id = j.message_id
           where m.wamid = 'wamid.MB1'), 0, 'a placeholder has no job');
select pg_temp.arrive('5215517000002', 'wamid.MB1', 'audio', '{"id": "9002", "mime_type": "audio/ogg", "voice": true}',
                      pg_temp.t('10:00:04'));
select is((pg_temp.job('wamid.MB1')).media_id, '9002', 'the placeholder replaced by a voice note gets its job');

-- 2. The batch holds for its media: due at arrival + media_wait (15 s), not the quiet period's 10 s.
select is((pg_temp.buffer('wamid.MA1')).due_at, pg_temp.t('10:00:15'),
          'Ana''s customer''s buffer, quiet from 10:00:12, waits for the photo until 10:00:15');
select is((pg_temp.buffer('wamid.MB1')).due_at, pg_temp.t('10:00:19'), 'the voice note holds its buffer 15 s');
select is((select count(*)::integer from wa.claim_buffers('early', 5, interval '60 seconds', pg_temp.t('10:00:14'))),
          0, 'nothing claimable while the media are pending and young');

-- 3. Claim: a lease and a fence; a claimed job is not claimed again until its lease ends.
select is((select count(*)::integer from wa.claim_media_jobs('w1', 10, interval '5 minutes', pg_temp.t('10:00:05'))), 2,
          'both pending jobs claimed');
select is((pg_temp.job('wamid.MA1')).run_at, pg_temp.t('10:05:05'), 'the lease runs until 10:05:05');
select is((select count(*)::integer from wa.claim_media_jobs('w2', 10, interval '5 minutes', pg_temp.t('10:01:00'))), 0,
          'nothing to claim under a live lease');
select is((select attempts from wa.claim_media_jobs('w2', 10, interval '5 minutes', pg_temp.t('10:05:06'))
           where wamid = 'wamid.MA1'), 2, 'after the lease the job is claimed again: a second attempt');
select is((pg_temp.job('wamid.MA1')).last_error, 'lease expired: worker w1 lost the job', 'saying why');
select throws_ok(format('select wa.complete_media_job(%L, %s, ''x'', 1, ''h'', ''image/jpeg'')',
                        (pg_temp.msg('wamid.MB1')).id, (pg_temp.job('wamid.MA1')).fence - 100),
                 'P0410', null, 'a stale fence cannot settle a job');

-- 4. Complete: the message records the file; the hold is released and the buffer is due by its own rules.
select wa.complete_media_job((pg_temp.msg('wamid.MA1')).id, (pg_temp.job('wamid.MA1')).fence,
                             'conv/wamid.MA1.jpg', 1234, 'abc', 'image/jpeg');
select is(row(m.media_state, m.media_path, m.media_size, m.media_sha256, m.media_mime_type),
          row('stored'::text, 'conv/wamid.MA1.jpg'::text, 1234::bigint, 'abc'::text, 'image/jpeg'::text),
          'stored: path, size, sha256, mime type') from pg_temp.msg('wamid.MA1') m;
select is(pg_temp.job('wamid.MA1'), null, 'the job is gone');
select is(row((pg_temp.buffer('wamid.MA1')).media_hold_until, (pg_temp.buffer('wamid.MA1')).due_at),
          row(null::timestamptz, pg_temp.t('10:00:12')), 'no hold left: due at its quiet end, 10:00:12');

-- 5. Fail: transient backs off; the last attempt or a permanent error records the reason and drops the job.
select is(wa.fail_media_job((pg_temp.msg('wamid.MB1')).id, (pg_temp.job('wamid.MB1')).fence, 'HTTP 500', false,
                            interval '30 seconds', 8, pg_temp.t('10:05:10')), 'retry', 'a 500 is retried');
select is(row((pg_temp.job('wamid.MB1')).run_at, (pg_temp.job('wamid.MB1')).fence),
          row(pg_temp.t('10:05:40'), null::bigint), 'after the delay asked for, released');
select is((select attempts from wa.claim_media_jobs('w3', 10, interval '5 minutes', pg_temp.t('10:05:40'))), 3,
          'claimed again: a third attempt (w1''s lease, w2''s, this one)');
select is(wa.fail_media_job((pg_temp.msg('wamid.MB1')).id, (pg_temp.job('wamid.MB1')).fence, 'HTTP 500', false,
                            null, 3, pg_temp.t('10:05:41')), 'failed', 'the last attempt fails the message');
select is(row((pg_temp.msg('wamid.MB1')).media_state, (pg_temp.msg('wamid.MB1')).media_error),
          row('failed'::text, 'gave up after 3 attempts: HTTP 500'::text), 'with the reason');

-- 6. Retention: kept by default; past the number's media_retention, listed for removal, then marked removed.
select is((select count(*)::integer from wa.expired_media(100, pg_temp.t('10:00:00') + interval '10 years')), 0,
          'by default media are kept');
update wa.phone_numbers set media_retention = interval '30 days' where phone_number_id = 'MEDIA1';
select is((select array_agg(path) from wa.expired_media(100, now() + interval '31 days')),
          array['conv/wamid.MA1.jpg'], 'past 30 days the stored photo is due for removal');
select wa.record_media_removed(array[(pg_temp.msg('wamid.MA1')).id]);
select is((pg_temp.msg('wamid.MA1')).media_state, 'removed', 'and recorded removed');

-- 7. Storage: an object of whatsapp-media is readable exactly with its conversation.
insert into storage.objects (bucket_id, name, owner_id, metadata)
select 'whatsapp-media', m.conversation_id || '/' || m.wamid || '.jpg', null, '{}'
from public.messages m where m.wamid in ('wamid.MA1', 'wamid.MB1');
create function pg_temp.visible(p_user text) returns text language plpgsql as $$
declare v text;
begin
  perform tests.authenticate_as(pg_temp.id(p_user));
  select string_agg(split_part(name, '/', 2), ',' order by name collate "C") into v from storage.objects
  where bucket_id = 'whatsapp-media' and split_part(name, '/', 2) in ('wamid.MA1.jpg', 'wamid.MB1.jpg');
  perform tests.clear_authentication();
  return coalesce(v, '');
end $$;
select is(pg_temp.visible('ana'), 'wamid.MA1.jpg', 'Ana reads her conversation''s photo, not Beto''s');
select is(pg_temp.visible('beto'), 'wamid.MB1.jpg', 'Beto reads his');
select is((select count(*)::integer from regexp_split_to_table(pg_temp.visible('coord'), ',')), 2,
          'their coordinator reads both');
select is(authz.media_conversation_id('../etc/passwd'), null, 'a name that is not <conversation>/... belongs to none');

select * from finish();
rollback;
