from routecli.cli import main

main()
