// A multipart/form-data reader for uploads. storage-js sends a Blob as a form part named "" (its
// prepareUploadFormData), which Deno's Request.formData() silently drops, so the parts are read here.

export interface Part {
  name: string;
  /** Present on file parts. */
  filename?: string;
  contentType?: string;
  data: Uint8Array<ArrayBuffer>;
}

const CRLF = new Uint8Array([13, 10]);
const HEADERS_END = new Uint8Array([13, 10, 13, 10]);

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first!, from); i !== -1; i = haystack.indexOf(first!, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** The boundary of a multipart/form-data content type, or undefined. */
export function boundaryOf(contentType: string): string | undefined {
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/** The parts of a multipart body; throws when the body does not follow the format. */
export function parseMultipart(body: Uint8Array<ArrayBuffer>, boundary: string): Part[] {
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  const text = new TextDecoder();
  const parts: Part[] = [];
  let at = indexOf(body, delimiter, 0);
  if (at === -1) throw new Error("no multipart boundary in the body");
  while (true) {
    const start = at + delimiter.length;
    if (body[start] === 45 && body[start + 1] === 45) return parts; // "--": the closing delimiter
    const headersAt = start + CRLF.length;
    const headersEnd = indexOf(body, HEADERS_END, headersAt);
    const next = indexOf(body, delimiter, headersAt);
    if (headersEnd === -1 || next === -1 || headersEnd > next) {
      throw new Error("a multipart part is malformed");
    }
    const headers = text.decode(body.subarray(headersAt, headersEnd));
    const disposition = /content-disposition:([^\r\n]*)/i.exec(headers)?.[1] ?? "";
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1] ?? "";
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1];
    const contentType = /content-type:\s*([^\r\n]*)/i.exec(headers)?.[1]?.trim();
    // The part's data ends with the CRLF that precedes the next delimiter.
    parts.push({
      name,
      filename,
      contentType,
      data: body.subarray(headersEnd + HEADERS_END.length, next - 2),
    });
    at = next;
  }
}
