// One section of `npm run bench -- profile`: a path profiled (a delivery, a batch, a claim), as Markdown.
export interface ProfileSection {
  title: string;
  markdown: string;
  /** How long the profiled run took, for the log. */
  elapsedMs: number;
}
