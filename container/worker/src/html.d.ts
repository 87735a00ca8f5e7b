// wrangler bundles *.html as text modules (the "Text" rule in wrangler.jsonc).
declare module "*.html" {
  const content: string;
  export default content;
}
