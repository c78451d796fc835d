#!/usr/bin/env bash
# Refresh the browser libraries from npm (versions pinned in console/package.json and its lock
# file) into the package, where `serve` finds them with no build step and no network at run
# time: the console's chart.js and hls.js, and Swagger UI and ReDoc for /docs and /redoc.
set -euo pipefail
cd "$(dirname "$0")/../console"
npm ci --no-audit --no-fund --silent
console=../src/tajiri_live/console/static/vendor
docs=../src/tajiri_live/apidocs/static
mkdir -p "$console" "$docs"
cp node_modules/chart.js/dist/chart.umd.min.js "$console/chart.umd.min.js"
cp node_modules/hls.js/dist/hls.min.js "$console/hls.min.js"
swagger=node_modules/swagger-ui-dist
cp "$swagger/swagger-ui-bundle.js" "$swagger/swagger-ui.css" "$swagger/favicon-32x32.png" "$docs/"
cp "$swagger/swagger-ui-bundle.js.LICENSE.txt" "$docs/"
cp node_modules/redoc/bundles/redoc.standalone.js "$docs/"
cp node_modules/redoc/bundles/redoc.standalone.js.LICENSE.txt "$docs/"
# ReDoc's sidebar shows its maker's logo from their CDN: an empty source makes the image fail
# at once (it then hides itself), so the page asks nothing of another host.
sed -i 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#""#' "$docs/redoc.standalone.js"
if grep -q 'https://cdn' "$docs/redoc.standalone.js" "$docs/swagger-ui-bundle.js"; then
  echo "a vendored docs bundle still loads something from a CDN" >&2
  exit 1
fi
# The bundles name source maps that are not shipped: a browser's developer tools would ask.
sed -i '/^\/\/# sourceMappingURL=/d' "$docs/swagger-ui-bundle.js" "$docs/redoc.standalone.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$docs/swagger-ui.css"
version() { node -p "require('./node_modules/$1/package.json').version"; }
echo "vendored chart.js $(version chart.js), hls.js $(version hls.js)," \
  "swagger-ui-dist $(version swagger-ui-dist), redoc $(version redoc)"
