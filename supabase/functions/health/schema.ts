// The newest migration these functions were written against. Readiness fails while the database is behind
// it (functions deployed before `supabase db push`); a test keeps it equal to the newest file in
// supabase/migrations, so adding a migration without bumping it fails `npm test`.
export const EXPECTED_MIGRATION = "20261202190000";
