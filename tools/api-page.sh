#!/bin/sh
# Write the page /api serves: notifyd-api(7) as HTML, in the frame of the
# other pages (web/index.html's head and header, with its own title and
# a script that only marks the page in the header).
# Usage: api-page.sh man/notifyd-api.7 web/index.html > api.html
set -eu
sed -n '1,/<main id="main">/p' "$2" |
    sed -e 's#<title>.*</title>#<title>API reference · notifyd</title>#' \
        -e 's#/assets/landing.js#/assets/nav.js#'
mandoc -Thtml -Ofragment "$1"
printf '</main>\n</body>\n</html>\n'
